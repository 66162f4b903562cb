vaultx_spin::job!(vaultx_api::jobs::verify);
