vaultx_spin::route!(vaultx_api::routes::file_version);
