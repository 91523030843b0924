export { PostgresStore } from './postgres.store.js';
export type { PostgresStoreOptions } from './postgres.store.js';
export { sessionTableDdl } from './postgres.schema.js';
