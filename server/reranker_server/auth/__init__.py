"""Who is calling: API keys (several, rotated without a restart), JWT bearer tokens verified
against a mounted JWKS, and per-client rate limits. The HTTP layer asks `Authenticator` for an
`Identity`, then `RateLimiter` whether that client may send this many pairs now."""
