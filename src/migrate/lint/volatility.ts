/**
 * Volatility of functions that show up in column defaults. A new column with a volatile
 * default (computed per row) makes PostgreSQL rewrite the whole table under an ACCESS
 * EXCLUSIVE lock; a stable or immutable one is evaluated once and stored in the catalog.
 * Offline there is no pg_proc to ask, so functions outside these lists are "unknown".
 */

const VOLATILE = new Set([
  'random',
  'random_normal',
  'clock_timestamp',
  'timeofday',
  'gen_random_uuid',
  'gen_random_bytes',
  'uuid_generate_v1',
  'uuid_generate_v1mc',
  'uuid_generate_v4',
  'uuidv4',
  'uuidv7',
  'nextval',
  'setval',
  'txid_current',
  // MySQL
  'uuid',
  'uuid_short',
  'rand',
  'sysdate',
]);

const NOT_VOLATILE = new Set([
  'now',
  'current_timestamp',
  'current_date',
  'current_time',
  'localtime',
  'localtimestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'timezone',
  'lower',
  'upper',
  'coalesce',
  'concat',
  'to_json',
  'to_jsonb',
  'json_build_object',
  'jsonb_build_object',
  'json_build_array',
  'jsonb_build_array',
  'make_interval',
  'make_date',
  'array',
  // MySQL
  'utc_timestamp',
  'curdate',
  'curtime',
]);

export type Volatility = 'volatile' | 'stable' | 'unknown';

/** Classifies one function by its unqualified name. */
export function functionVolatility(name: string): Volatility {
  const bare = name.toLowerCase().split('.').pop() ?? '';
  if (VOLATILE.has(bare)) return 'volatile';
  if (NOT_VOLATILE.has(bare)) return 'stable';
  return 'unknown';
}

/** The worst of several: one volatile call makes the whole expression volatile. */
export function combineVolatility(values: Volatility[]): Volatility | null {
  if (values.includes('volatile')) return 'volatile';
  if (values.includes('unknown')) return 'unknown';
  return values.length > 0 ? 'stable' : null;
}
