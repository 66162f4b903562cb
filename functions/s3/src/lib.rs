vaultx_spin::route!(vaultx_s3 as s3);
