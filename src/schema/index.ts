// The coordinator's GraphQL schema: the builder plus every domain file.
import { GraphQLSchema } from 'graphql';
import { builder } from './builder.ts';
import './scalars.ts';
import './datanodes.ts';
import './images.ts';
import './renditions.ts';
import './uploads.ts';
import './events.ts';
import './tokens.ts';

const SCHEMA_DESCRIPTION =
  'Tessera, a distributed image store: images are cut into fragments, each kept on several datanodes. ' +
  'Upload with uploadImage (one request) or beginUpload / uploadFragment / completeUpload (chunked, resumable); ' +
  'download with GET /images/{name} or fragmentData. Errors carry extensions.code (see the README, "Errors").';

// Pothos has no option for the schema's own description: the built schema, described.
export const schema = new GraphQLSchema({ ...builder.toSchema({ sortSchema: false }).toConfig(), description: SCHEMA_DESCRIPTION });
