// What every GraphQL resolver sees: the coordinator's services and facts about the request.
import type { Coordinator } from './coordinator.ts';
import type { Principal } from './auth/rules.ts';

export interface Context {
  app: Coordinator;
  /** Origin used for Image.url: --public-url, else the request's own. */
  publicBase: string;
  /** Who sent the request (src/auth); undefined when it carried no valid credential. */
  principal?: Principal;
}
