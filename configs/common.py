"""Settings shared by every config: the sharding rule table."""

# Sharding rules: logical axis name -> mesh axis (or axes). One table for every model.
SHARDING_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("length", None),
    ("features", None),
)
