// Every operation the console sends, in one place.

export const SIGN_IN = `query SignIn { cluster { imageCount } }`;

export const IMAGES = `query Images($first: Int!, $after: String, $prefix: String) {
  images(first: $first, after: $after, prefix: $prefix) {
    totalCount
    pageInfo { endCursor hasNextPage }
    edges { node { name size contentType format width height signedUrl: url(expiresIn: 3600) } }
  }
}`;

const DATANODE = `id url status`;

export const IMAGE = `query Image($name: String!) {
  image(name: $name) {
    name size contentType format width height sha256 createdAt fragmentCount fragmentSize
    signedUrl: url(expiresIn: 3600)
    fragments { index size sha256 replicas { ${DATANODE} } }
  }
}`;

export const DELETE_IMAGE = `mutation Delete($name: String!) { deleteImage(name: $name) }`;

export const BEGIN_UPLOAD = `mutation Begin($input: BeginUploadInput!) {
  beginUpload(input: $input) { id name size fragmentSize fragmentCount receivedFragments }
}`;
export const UPLOAD_SESSION = `query Session($id: ID!) { upload(id: $id) { id name size fragmentSize fragmentCount receivedFragments } }`;
export const UPLOAD_FRAGMENT = `mutation Fragment($uploadId: ID!, $index: Int!, $sha256: String, $file: File) {
  uploadFragment(uploadId: $uploadId, index: $index, sha256: $sha256, file: $file) { index }
}`;
export const COMPLETE_UPLOAD = `mutation Complete($uploadId: ID!) { completeUpload(uploadId: $uploadId) { name } }`;

const DATANODE_FIGURES = `${DATANODE} draining cpuPercent memoryPercent diskPercent diskFreeBytes fragmentCount storedBytes lastSeenAt`;

export const CLUSTER = `query Cluster {
  cluster { replicationFactor datanodeCount liveDatanodeCount imageCount storedBytes underReplicatedFragments pendingReplicaDeletions }
  datanodes { ${DATANODE_FIGURES} }
}`;

export const DATANODE_HEALTH = `subscription Health { datanodeHealth { at cpuPercent memoryPercent diskPercent status datanode { ${DATANODE_FIGURES} } } }`;

export const CLUSTER_EVENTS = `subscription Events { clusterEvents { __typename at message
  ... on DatanodeStatusChanged { status datanode { id } }
  ... on ReplicaRepaired { fragmentId }
} }`;
