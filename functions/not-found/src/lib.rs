vaultx_spin::route!(vaultx_api::routes::not_found);
