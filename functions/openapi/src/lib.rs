vaultx_spin::route!(vaultx_api::routes::openapi);
