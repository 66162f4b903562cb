vaultx_spin::route!(vaultx_api::routes::health_metrics);
