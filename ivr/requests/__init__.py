"""Call requests (docs/product.md §3): a registration or payment a payer completes by
calling the DID leased to their mobile."""
