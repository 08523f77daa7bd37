import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import {
  Attributes,
  Context,
  ROOT_CONTEXT,
  Span,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

/**
 * OpenTelemetry traces, off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (docs/operations.md,
 * "Traces"). One trace per task: the API request that created it (continuing the client's
 * `traceparent`), or the schedule fire; then, from the `traceparent` stored on the task row, the
 * worker's run with its image pull, container and finish, and the webhook deliveries the task
 * causes. The container gets `TRACEPARENT` so a task's own spans join the trace.
 *
 * While tracing is off nothing here records or allocates a span: `inSpan` runs its function
 * straight away and `currentTraceparent` is undefined.
 */
let provider: NodeTracerProvider | undefined;

/** Starts exporting spans of the process `service` (api, worker, scheduler) to `endpoint`. */
export function startTracing(service: string, endpoint: string | undefined): void {
  if (endpoint === undefined || provider) return;
  provider = new NodeTracerProvider({
    resource: new Resource({ 'service.name': `kiln-${service}` }),
    // A request's path is recorded: however long a client makes it, a span keeps 1 KiB of it.
    spanLimits: { attributeValueLengthLimit: 1024 },
    spanProcessors: [
      new BatchSpanProcessor(
        new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` }),
      ),
    ],
  });
  provider.register({ propagator: new W3CTraceContextPropagator() });
}

/** Sends the spans still buffered and stops (at shutdown). */
export async function stopTracing(): Promise<void> {
  const stopping = provider;
  provider = undefined;
  await stopping?.shutdown();
}

/** Sends the spans still buffered when its process shuts down. */
@Injectable()
export class TracingShutdown implements OnApplicationShutdown {
  async onApplicationShutdown(): Promise<void> {
    await stopTracing();
  }
}

export function tracingEnabled(): boolean {
  return provider !== undefined;
}

/** The `traceparent` of the span active now; undefined when there is none (or tracing is off). */
export function currentTraceparent(active: Context = context.active()): string | undefined {
  if (!provider) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(active, carrier);
  return carrier.traceparent;
}

/** The context a stored or received `traceparent` continues; the root context without one. */
export function contextOf(traceparent: string | null | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent });
}

export interface SpanOptions {
  attributes?: Attributes;
  kind?: SpanKind;
  /** The parent: a context (see {@link contextOf}); by default the active one. */
  parent?: Context;
}

/**
 * Runs `work` in a span named `name`, active for everything `work` starts, ended when it settles:
 * an error marks the span failed and is thrown on. `work` gets the span (undefined while tracing
 * is off) to add attributes.
 */
export async function inSpan<T>(
  name: string,
  options: SpanOptions,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!provider) return work(undefined);
  const parent = options.parent ?? context.active();
  const span = trace
    .getTracer('kiln')
    .startSpan(name, { kind: options.kind, attributes: options.attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => work(span));
  } catch (error) {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    throw error;
  } finally {
    span.end();
  }
}

/**
 * A span the caller ends (an HTTP request's: it ends when the answer is sent). Undefined while
 * tracing is off.
 */
export function startSpan(name: string, options: SpanOptions): Span | undefined {
  if (!provider) return undefined;
  return trace
    .getTracer('kiln')
    .startSpan(
      name,
      { kind: options.kind, attributes: options.attributes },
      options.parent ?? context.active(),
    );
}

/**
 * A trace of its own for something that happens at once (a schedule firing a task): a root span,
 * ended at once, whose `traceparent` what it causes carries. Undefined while tracing is off.
 */
export function markTrace(name: string, attributes: Attributes): string | undefined {
  const span = startSpan(name, { kind: SpanKind.PRODUCER, parent: ROOT_CONTEXT, attributes });
  if (!span) return undefined;
  span.end();
  return currentTraceparent(trace.setSpan(ROOT_CONTEXT, span));
}

/** Runs `work` with `span` active (as is, while tracing is off). */
export function withSpan<T>(span: Span | undefined, work: () => T): T {
  if (!span) return work();
  return context.with(trace.setSpan(context.active(), span), work);
}

export { SpanKind, SpanStatusCode };
export type { Span };
