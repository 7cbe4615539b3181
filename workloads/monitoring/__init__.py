"""Monitoring: drift of served inputs against the training reference, as metrics; the retraining trigger."""
