// What every GraphQL resolver sees: the coordinator's services and facts about the request.
import type { Coordinator } from './coordinator.ts';

export interface Context {
  app: Coordinator;
  /** Origin used for Image.url: --public-url, else the request's own. */
  publicBase: string;
  /** The request carried the cluster secret. */
  authorized: boolean;
}
