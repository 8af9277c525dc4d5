"""fasdesk doctor and fasdesk bench."""
