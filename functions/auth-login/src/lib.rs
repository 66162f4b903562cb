vaultx_spin::route!(vaultx_api::routes::auth_login);
