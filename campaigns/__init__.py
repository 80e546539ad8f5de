"""Campaign specs, their python steps and demo data (`campaigns.outbound_steps:seniority`, ...)."""
