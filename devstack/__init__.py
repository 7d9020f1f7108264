"""Local development stack: embedded services, the sample tushare server, tooling."""
