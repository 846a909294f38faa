/** This instance's name in the lease table (host:pid:random). */
export const CONSUMER_OWNER = Symbol('CONSUMER_OWNER');
export const SHARD_READER = Symbol('SHARD_READER');
export const BATCH_SINK = Symbol('BATCH_SINK');
/** Builds the worker (poller, aggregation, committer) of one taken lease. */
export const SHARD_WORKER_FACTORY = Symbol('SHARD_WORKER_FACTORY');
export const LEASE_COORDINATOR = Symbol('LEASE_COORDINATOR');
