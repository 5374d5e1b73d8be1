// The one typed Pothos builder: scalars, the context type and the root types; each domain
// file (images, uploads, datanodes, events) adds its own types and fields to it.
import SchemaBuilder from '@pothos/core';
import type { Context } from '../context.ts';

export interface YogaFile {
  readonly name: string;
  readonly size: number;
  readonly type: string;
  arrayBuffer(): Promise<ArrayBuffer>;
  /** The bytes as the parser holds them (Blob.stream()). */
  stream?(): unknown;
}

export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | number };
    SafeInt: { Input: number; Output: number };
    Base64: { Input: Buffer; Output: Buffer };
    File: { Input: YogaFile; Output: never };
    ID: { Input: string; Output: string };
  };
}>({ defaultFieldNullability: false });

builder.queryType({ description: 'Read images, uploads, datanodes and cluster figures.' });
builder.mutationType({ description: 'Upload, delete, and administer datanodes.' });
builder.subscriptionType({ description: 'Live events and health samples, over Server-Sent Events or graphql-ws.' });
