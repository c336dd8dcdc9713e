"""Edge-first model serving on Ray Serve: replicas that verify what they load (`replica`), the
edge-first router with centre fallback (`router`), deploying a registry version (`deploy`), and
the scoring client a payment system embeds (`client`)."""
