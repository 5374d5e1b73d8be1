// Starts a coordinator (services + HTTP surface) and returns a handle to stop it: used by the
// CLI entry, by npm start and by the tests.
import type { Logger } from 'pino';
import type { CoordinatorConfig } from './config.ts';
import { createCoordinator, type Coordinator } from './coordinator.ts';
import { createHttpServer } from './http/server.ts';

export interface RunningCoordinator {
  app: Coordinator;
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig, log: Logger): Promise<RunningCoordinator> {
  const app = await createCoordinator(config, log);
  const http = createHttpServer(app);
  const { port, url } = await http.listen(config.port, config.host);
  await app.start();
  let stopping: Promise<void> | undefined;
  return {
    app,
    url,
    port,
    stop: () =>
      (stopping ??= (async () => {
        await http.close();
        await app.stop();
      })()),
  };
}
