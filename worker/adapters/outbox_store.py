"""Redis store, the outbox: entries a commit wrote for publishing, confirmed once out,
and read again by the tick's relay when no confirm came (docs/design.md: outbox).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from worker.adapters import compact_json
from worker.adapters.store_base import StoreBase, epoch, text


class OutboxStore(StoreBase):
    def confirm_published(self, entry_ids: list[str]) -> None:
        for shard, ids in self._outbox.by_shard(entry_ids).items():
            pipe = self.client.pipeline(transaction=True)  # one shard: one slot
            pipe.zrem(self.keys.outbox_pending(shard), *ids)
            pipe.hdel(self.keys.outbox_entries(shard), *ids)
            pipe.execute()

    def stale_outbox(self, older_than: datetime, limit: int) -> list[tuple[str, dict[str, Any]]]:
        entries: list[tuple[str, dict[str, Any]]] = []
        for shard in self._walk():
            if len(entries) >= limit:
                break
            pending = self.keys.outbox_pending(shard)
            # without withscores, members only
            ids = cast(
                list[bytes | str],
                self.client.zrangebyscore(
                    pending, "-inf", epoch(older_than), 0, limit - len(entries)
                ),
            )
            if not ids:
                continue
            raw = self.client.hmget(self.keys.outbox_entries(shard), ids)
            found = [
                (text(entry_id), compact_json.loads(body))
                for entry_id, body in zip(ids, raw, strict=True)
                if body is not None  # None: confirmed between the two reads
            ]
            self._outbox.remember([entry_id for entry_id, _ in found], shard)
            entries += found
        return entries
