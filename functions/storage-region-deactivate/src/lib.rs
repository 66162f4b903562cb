vaultx_spin::route!(vaultx_api::routes::storage_region_deactivate);
