// The coordinator's GraphQL schema: the builder plus every domain file.
import { builder } from './builder.ts';
import './scalars.ts';
import './datanodes.ts';
import './images.ts';
import './uploads.ts';
import './events.ts';
import './tokens.ts';

export const schema = builder.toSchema({ sortSchema: false });
