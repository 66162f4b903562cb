vaultx_spin::route!(vaultx_api::routes::replication_policy);
