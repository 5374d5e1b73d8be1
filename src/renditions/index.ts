// The image-as-image services wired together: media detection on first read, the renderer, the
// rendition cache in the cluster and the renditions service the HTTP route and GraphQL use.
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config.ts';
import type { AsyncCatalog as Catalog, MetadataStore } from '../metadata/store.ts';
import type { Replicas } from '../cluster/replicas.ts';
import type { ReplicaDeleter } from '../cluster/replica-deletions.ts';
import type { ImageService } from '../image-service.ts';
import { createImageMedia } from './image-media.ts';
import { createRenditionCache } from './cache.ts';
import { createRenderer } from './render.ts';
import { createRenditions } from './service.ts';

export function createRenditionServices({
  config,
  metadata,
  catalog,
  replicas,
  deleter,
  images,
  log,
}: {
  config: CoordinatorConfig;
  metadata: MetadataStore;
  catalog: Catalog;
  replicas: Replicas;
  deleter: ReplicaDeleter;
  images: ImageService;
  log: Logger;
}) {
  const readRange = images.readRange;
  const imageMedia = createImageMedia({ catalog, readRange });
  const cache = createRenditionCache({
    catalog,
    table: metadata.renditions,
    replicas,
    deleter,
    log,
    replicationFactor: config.replicationFactor,
    budgetBytes: config.renditionCacheBytes,
  });
  const renderer = createRenderer({ concurrency: config.renditionConcurrency, maxPixels: config.renditionMaxPixels });
  const renditions = createRenditions({
    config: { maxSize: config.renditionMaxSize, allowedSizes: config.renditionSizes },
    readRange,
    imageMedia,
    cache,
    renderer,
  });
  return { imageMedia, renditions, renditionCache: cache };
}
