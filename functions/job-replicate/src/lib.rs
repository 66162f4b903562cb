vaultx_spin::job!(vaultx_api::jobs::replicate);
