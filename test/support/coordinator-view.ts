// Tests reach behind the coordinator's services on purpose (to drive a loop, read the index):
// its `internals` merged with the services into one handle, so a test names what it uses.
import type { Coordinator, CoordinatorInternals } from '../../src/coordinator.ts';

export type TestCoordinator = Coordinator & CoordinatorInternals;

export const withInternals = (app: Coordinator): TestCoordinator => ({ ...app, ...app.internals });
