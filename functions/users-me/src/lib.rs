vaultx_spin::route!(vaultx_api::routes::users_me);
