"""Pure decoders from vendor dialects to hub Events: no I/O."""
