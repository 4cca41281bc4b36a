"""The uplink service: leafnode connections from this site to its hubs (DESIGN §2)."""
