"""Rate-limit buckets in PostgreSQL, so every replica and worker takes from the same ones:
one statement refills a bucket to the database's clock and takes from it only when enough
is there (a row lock makes concurrent takes queue), so a limit holds exactly across
processes."""

from __future__ import annotations

from hector_py.agent.stores.postgres import PostgresStore

NOW = "extract(epoch from clock_timestamp())"
REFILLED = f"LEAST($2::float8, b.level + ({NOW} - b.at) * $2::float8 / 60.0)"
TAKE = f"""
INSERT INTO rate_buckets AS b (key, level, at) VALUES ($1, $2::float8 - $3::float8, {NOW})
ON CONFLICT (key) DO UPDATE SET level = {REFILLED} - $3::float8, at = {NOW}
WHERE $4 OR {REFILLED} >= LEAST($3::float8, $2::float8)
RETURNING level
"""
LEVEL = f"SELECT {REFILLED} FROM rate_buckets b WHERE key = $1"


class PgBuckets:
    """``Buckets`` in the postgres store's database (table ``rate_buckets``)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def take(self, key: str, per_minute: int, amount: float, force: bool = False) -> float:
        """See ``ratelimit.Buckets.take``."""
        async with self._store.connection() as conn:
            taken = await conn.fetchval(TAKE, key, float(per_minute), float(amount), force)
            if taken is not None:
                return 0.0
            level = await conn.fetchval(LEVEL, key, float(per_minute))
        missing = min(amount, per_minute) - float(level if level is not None else per_minute)
        return max(missing * 60 / per_minute, 0.001)

    async def level(self, key: str, per_minute: int) -> float:
        """See ``ratelimit.Buckets.level``."""
        async with self._store.connection() as conn:
            level = await conn.fetchval(LEVEL, key, float(per_minute))
        return float(level) if level is not None else float(per_minute)
