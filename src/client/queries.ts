// The GraphQL documents the client sends, as plain strings: only fields of the contract's
// schema, so the client works against any coordinator that honours it.

const DATANODE_REF = 'id url status';
const DATANODE = `${DATANODE_REF} lastSeenAt cpuPercent memoryPercent diskPercent diskFreeBytes fragmentCount storedBytes`;
const IMAGE = 'name size contentType sha256 fragmentSize fragmentCount createdAt url';
const SESSION = 'id name size fragmentSize fragmentCount receivedFragments expiresAt';

export const BEGIN_UPLOAD = `mutation BeginUpload($input: BeginUploadInput!) { beginUpload(input: $input) { ${SESSION} } }`;
export const UPLOAD_SESSION = `query Upload($id: ID!) { upload(id: $id) { ${SESSION} } }`;
// The receipt's replicas are not asked for: per fragment they would only cost the server work.
export const UPLOAD_FRAGMENT_FILE = `mutation UploadFragment($uploadId: ID!, $index: Int!, $file: File, $sha256: String) { uploadFragment(uploadId: $uploadId, index: $index, file: $file, sha256: $sha256) { index size sha256 } }`;
export const UPLOAD_FRAGMENT_BASE64 = `mutation UploadFragment($uploadId: ID!, $index: Int!, $data: Base64, $sha256: String) { uploadFragment(uploadId: $uploadId, index: $index, data: $data, sha256: $sha256) { index size sha256 } }`;
export const COMPLETE_UPLOAD = `mutation CompleteUpload($uploadId: ID!, $sha256: String) { completeUpload(uploadId: $uploadId, sha256: $sha256) { ${IMAGE} } }`;
export const ABORT_UPLOAD = `mutation AbortUpload($uploadId: ID!) { abortUpload(uploadId: $uploadId) }`;
export const UPLOAD_IMAGE = `mutation UploadImage($name: String!, $file: File!, $contentType: String) { uploadImage(name: $name, file: $file, contentType: $contentType) { ${IMAGE} } }`;

export const IMAGE_SUMMARY = `query Image($name: String!) { image(name: $name) { ${IMAGE} } }`;
export const IMAGE_DETAIL = `query ImageDetail($name: String!) { image(name: $name) { ${IMAGE} fragments { index size sha256 replicas { ${DATANODE_REF} } } } }`;
export const IMAGES_PAGE = `query Images($first: Int, $after: String, $prefix: String) { images(first: $first, after: $after, prefix: $prefix) { totalCount edges { node { ${IMAGE} } } pageInfo { hasNextPage endCursor } } }`;
// Without totalCount: walking every page must not count a large index once per page.
export const IMAGES_PAGE_UNCOUNTED = `query Images($first: Int, $after: String, $prefix: String) { images(first: $first, after: $after, prefix: $prefix) { edges { node { ${IMAGE} } } pageInfo { hasNextPage endCursor } } }`;
export const DELETE_IMAGE = `mutation DeleteImage($name: String!) { deleteImage(name: $name) }`;
export const DATANODES = `query Datanodes { datanodes { ${DATANODE} } }`;
// What an upload asks before it starts (one uploadImage request or a chunked upload): the fragment
// size alone. CLUSTER (below) also counts stored images and bytes and under-replicated fragments
// over the whole index: about 0.5 s of coordinator CPU per upload on an index of a million images.
export const CLUSTER_FRAGMENT_SIZE = 'query ClusterFragmentSize { cluster { fragmentSize } }';
export const CLUSTER = `query Cluster { cluster { replicationFactor fragmentSize datanodeCount liveDatanodeCount imageCount storedBytes underReplicatedFragments } }`;
export const CLUSTER_EVENTS = `subscription ClusterEvents { clusterEvents { __typename at message
  ... on DatanodeStatusChanged { datanode { ${DATANODE_REF} } previous status }
  ... on ImageStored { name size }
  ... on ImageDeleted { name } } }`;
