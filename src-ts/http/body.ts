/** Request bodies: what `request()` accepts and how each kind is sent. */
import { Readable } from 'node:stream'
import { types } from 'node:util'
import { invalidArgType } from '../errors.js'

/**
 * A request body. Strings, bytes, `Blob`s and `URLSearchParams` are sent
 * with `Content-Length`; streams and async iterables chunked, or with the
 * `Content-Length` you set (the request fails if the stream's length
 * differs).
 */
export type RequestBodyInit =
  | string
  | ArrayBuffer
  | ArrayBufferView
  | Blob
  | URLSearchParams
  | Readable
  | AsyncIterable<Uint8Array | string>

/** A body ready for the native exchange. */
export type OutgoingBody =
  | { bytes: Buffer; stream?: undefined; contentType?: string }
  | { bytes?: undefined; stream: AsyncIterable<unknown>; contentType?: undefined }
  | { bytes?: undefined; stream?: undefined; contentType?: undefined }

const EXPECTED = 'a string, ArrayBuffer, TypedArray, DataView, Blob, URLSearchParams, Readable or AsyncIterable'

/**
 * Bytes of a string or binary value, or undefined for anything else. Views
 * and buffers from another realm (a vm context, a worker's transfer) count.
 */
export function bytesOf(value: unknown): Buffer | undefined {
  if (typeof value === 'string') return Buffer.from(value)
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (types.isAnyArrayBuffer(value)) return Buffer.from(value)
  return undefined
}

const NO_BODY: OutgoingBody = Object.freeze({})

/**
 * Convert a body. A Blob is read first (its bytes are not available
 * synchronously), so the result may be a Promise.
 */
export function toOutgoingBody(body: unknown): OutgoingBody | Promise<OutgoingBody> {
  if (body === undefined || body === null) return NO_BODY
  const bytes = bytesOf(body)
  if (bytes !== undefined) return { bytes }
  if (body instanceof URLSearchParams) {
    return { bytes: Buffer.from(body.toString()), contentType: 'application/x-www-form-urlencoded;charset=UTF-8' }
  }
  if (body instanceof Blob) {
    return body.arrayBuffer().then((ab) => ({ bytes: Buffer.from(ab), contentType: body.type || undefined }))
  }
  if (body instanceof Readable || (typeof body === 'object' && Symbol.asyncIterator in body)) {
    return { stream: body as AsyncIterable<unknown> }
  }
  throw invalidArgType('options.body', EXPECTED, body)
}

/** One chunk of a streamed body as bytes. */
export function chunkBytes(chunk: unknown): Buffer {
  const bytes = bytesOf(chunk)
  if (bytes === undefined) throw invalidArgType('body chunk', 'a string, Buffer, TypedArray or ArrayBuffer', chunk)
  return bytes
}
