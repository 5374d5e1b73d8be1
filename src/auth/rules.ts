// The one table of who may do what: every root field of Query, Mutation and Subscription with
// the least role it needs. A new root field without a line here is refused (and the role-matrix
// test fails), so every new operation gets a rule in this one place.
export const ROLES = ['read', 'write', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who made a request: a client token, anonymous access (--anonymous), or a datanode with the cluster secret. */
export type Principal =
  | { kind: 'token'; id: string; name: string; role: Role }
  | { kind: 'anonymous'; id: 'anonymous'; name: 'anonymous'; role: Role }
  | { kind: 'cluster'; id: 'cluster'; name: 'cluster secret'; role: undefined };

type RootType = 'Query' | 'Mutation' | 'Subscription';

export const OPERATION_RULES: Record<RootType, Record<string, Role>> = {
  Query: {
    __typename: 'read',
    __schema: 'read',
    __type: 'read',
    images: 'read',
    image: 'read',
    fragmentData: 'read',
    upload: 'read',
    datanodes: 'read',
    cluster: 'read',
    tokens: 'admin',
  },
  Mutation: {
    __typename: 'read',
    beginUpload: 'write',
    uploadFragment: 'write',
    completeUpload: 'write',
    abortUpload: 'write',
    uploadImage: 'write',
    deleteImage: 'write',
    registerDatanode: 'admin',
    drainDatanode: 'admin',
    removeDatanode: 'admin',
    createToken: 'admin',
    revokeToken: 'admin',
  },
  Subscription: {
    __typename: 'read',
    clusterEvents: 'read',
    datanodeHealth: 'read',
  },
};

/** What the cluster secret (held by datanodes, not clients) may do besides an admin token. */
export const CLUSTER_SECRET_FIELDS: ReadonlySet<string> = new Set([
  'Mutation.registerDatanode',
  'Mutation.drainDatanode',
  'Mutation.removeDatanode',
]);

const rank = (role: Role) => ROLES.indexOf(role);

export const roleAtLeast = (role: Role | undefined, needed: Role) => role !== undefined && rank(role) >= rank(needed);

/** The rule for `Type.field`: undefined when there is none (refused). */
export const ruleFor = (type: RootType, field: string): Role | undefined => OPERATION_RULES[type][field];

/** May `principal` use the root field `type.field`? */
export function allows(principal: Principal, type: RootType, field: string): boolean {
  if (principal.kind === 'cluster') return CLUSTER_SECRET_FIELDS.has(`${type}.${field}`);
  const needed = ruleFor(type, field);
  return needed !== undefined && roleAtLeast(principal.role, needed);
}

/** Routes outside GraphQL, with the least role they need (or a signed URL, for images). */
export const HTTP_RULES = {
  'GET /images/{name}': 'read',
  'PUT /images/{name}': 'write',
  'DELETE /images/{name}': 'write',
  'PUT /uploads/{id}/fragments/{index}': 'write', // as Mutation.uploadFragment
} as const satisfies Record<string, Role>;
