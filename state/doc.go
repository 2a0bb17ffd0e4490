// Package state is the node's persistent state: the bbolt schema, typed
// accessors, and keeping state.db from being a single point of failure.
// It is the only package that imports bbolt.
//
// Every write is one fsync'd transaction, and every open has a lock
// timeout. state knows nothing of HTTP, tor or the supervisor; what it
// cannot recover from its own files (containers whose records are lost)
// the node rebuilds from the data disk (init/apps).
//
// # What it keeps, beside state.db
//
//	state.db                 bbolt: meta, keys, containers, events
//	state.db.copies/N.db     the last DefaultCopies consistent copies
//	state.db.keys            the key journal: every add and revocation
//	state.db.corrupt-TIME    a damaged file, moved aside, never deleted
//
// # Damage is detected
//
//   - At open: bbolt's meta pages are read first (bbolt silently opens
//     from the older one when the newer is damaged: checkMeta says so);
//     every page and value is touched, then bbolt's tx.Check runs
//     (reachable, freed, page types, key order); then every value's
//     checksum. Measured on 10,000 containers (8.4 MB), the verified
//     open takes about 45 ms against 1 ms for a bare open and read
//     (BenchmarkRecovery): paid once a boot, and for each copy.
//   - Values are sealed (schema 2): a CRC-32C of bucket, key and value
//     after each, so a flipped byte in a value or key, which bbolt
//     cannot see, fails on use instead of decoding as something else.
//     Schema 1 files are sealed when first opened.
//   - On use: an accessor that meets a value that does not unseal, or a
//     panic of bbolt, or a fault on its mmap (debug.SetPanicOnFault, as
//     a fault would otherwise kill PID 1), returns a CorruptError
//     (errors.Is ErrCorrupt; Unavailable() true, so the API answers 503
//     naming it, not 500) and starts a recovery in the background; the
//     next call sees the recovered file.
//
// # Copies
//
// A copy is written from a read transaction (bbolt's Tx.WriteTo, so
// writers go on), fsync'd, verified like an open, and renamed into
// place; the directory is fsync'd. One is taken when the file opens
// (of what this boot found good), after committed writes at most once
// per DefaultCopyEvery (a crash loop writes every few seconds), and at
// Close when anything was written since the last. A copy that does
// not verify means the live file is damaged: it is dropped and the
// recovery starts. Names are sequence numbers, not times: a VPS
// without a battery may boot with its clock in the past.
//
// # Recovery
//
// The damaged file is moved aside; the copies are tried newest first,
// each verified before it is copied into place, and the first good one
// is used; with none, a fresh file. The key journal is then replayed
// over it. Recovery (from DB.Recoveries and DB.OnRecover) says what
// was damaged, where the file went, what the state came from, which
// copies were skipped and what the journal changed; init shows it in
// `cloud info`. What the copy lacks (containers made after it) init/apps
// rebuilds from the roots on disk. A newer schema (a downgrade) and a
// lock held by another process are errors, not damage: the file is
// left alone.
//
// # Authorization never moves backwards
//
// The key journal is an append-only file of lines, each a CRC-32C and
// one JSON record (add or revoke, with the key's fields), fsync'd
// before the API answers. A revocation is journaled before the key
// leaves state.db, so it survives a failed commit; an add is journaled
// in the same transaction. The journal is replayed over every file
// opened (revocations first, then adds that are missing), and Key and
// Keys refuse a key the journal last saw revoked even if state.db holds
// it: a copy older than a revocation cannot bring the key back. The
// baked authorized_keys seed state.db only while the journal is empty
// (the first boot), so a fresh state.db is not seeded with revoked
// baked keys. A damaged journal line is skipped and counted; a last
// line cut by a power loss (never acknowledged) is cut off. Losing the
// journal itself loses nothing while state.db is good: it is rebuilt
// from state.db's keys.
package state
