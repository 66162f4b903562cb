vaultx_spin::route!(vaultx_api::routes::access_key);
