vaultx_spin::route!(vaultx_api::routes::storage_regions);
