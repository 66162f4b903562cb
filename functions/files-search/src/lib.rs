vaultx_spin::route!(vaultx_api::routes::files_search);
