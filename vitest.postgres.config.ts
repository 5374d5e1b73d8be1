// `npm run test:postgres`: the integration and fault tests again with every coordinator they
// start on PostgreSQL (TESSERA_TEST_METADATA=postgres: test/support/test-metadata.ts gives each
// one a fresh database on the server at 127.0.0.1:5432, or TESSERA_TEST_POSTGRES_URL). Asking
// for PostgreSQL with no server there is an error, not a skip. `npm test` runs the same files on
// SQLite. The files chosen cover what the metadata layer does (uploads, downloads, deletes,
// listing, events, repair and the other fault tests, auth) within some minutes on two cores;
// the files left out either read the SQLite file itself (index-backup, stale-restore,
// migrations), exercise no metadata (HTTP, GraphQL limits, the CLI's and browsers' own code), or
// run on PostgreSQL in `npm test` already (the *-postgres tests, coordinators-shared, nginx-lb).
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

const POSTGRES_SUITE = [
  // uploads
  'upload-fragments',
  'image-put',
  'upload-errors',
  'upload-complete-checksum',
  'upload-expiry',
  'upload-idle-expiry',
  'client-upload',
  // downloads and listing
  'client-download',
  'image-download-range',
  'image-listing',
  'client-queries',
  'renditions',
  // deletes
  'image-delete',
  'delete-while-down',
  'delete-tombstone-later',
  'rebuild-delete-race',
  // events
  'subscriptions',
  'datanode-failure-events',
  // repair and the other fault tests
  're-replication',
  'repair-return',
  'replica-failover',
  'scrubber',
  'orphan-reconciliation',
  'reconcile-safety',
  'insufficient-datanodes',
  'fragment-replicas',
  'datanode-kill-during-io',
  'coordinator-crash',
  'index-restart',
  'index-rebuild',
  'network-partition',
  'unreadable-replica',
  'replica-identity',
  'cluster-identity',
  // auth and the data dir
  'auth-tokens',
  'auth-roles',
  'auth-admin-token',
  'data-permissions',
  // the cluster as a whole
  'cluster-status',
  'register-datanode',
  'cluster-end-to-end',
];

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: POSTGRES_SUITE.map((name) => `test/${name}.test.ts`),
    env: { TESSERA_TEST_METADATA: 'postgres' },
  },
});
