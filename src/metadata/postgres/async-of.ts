// Until the metadata interfaces are asynchronous on main: the async form of a synchronous one
// (same methods, arguments and results, each returned as a promise).
export type AsyncOf<T> = { [K in keyof T]: T[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<Awaited<R>> : T[K] };
