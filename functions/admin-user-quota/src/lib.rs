vaultx_spin::route!(vaultx_api::routes::admin_user_quota);
