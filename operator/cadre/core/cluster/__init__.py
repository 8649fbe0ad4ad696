"""The cluster as the admission pass sees it: the store the controller fills from watches
and relists (`store`), and the core's Snapshot built from it (`snapshot`)."""
