// The datanode contract suite against the in-process server and against the real process.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatanode } from '../datanode/server.ts';
import { datanodeContract } from './support/datanode-contract.ts';
import { startDatanodeProcess } from './support/datanode-process.ts';

datanodeContract('in-process createDatanode', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-dn-'));
  const secret = 'contract-secret-in-process';
  const node = await createDatanode({ dataDir, secret });
  const { url } = await node.listen(0, '127.0.0.1');
  return {
    url,
    secret,
    close: async () => {
      await node.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

datanodeContract('datanode/main.ts process', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-dn-'));
  const secret = 'contract-secret-process';
  const node = await startDatanodeProcess({ dataDir, secret });
  return {
    url: node.url,
    secret,
    close: async () => {
      await node.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
