import 'reflect-metadata';
import { PATH_METADATA } from '@nestjs/common/constants';
import type { TokenRole } from '@kiln/projects';
import { ApiModule } from '../api.module';
import { requiredRole } from './roles';

type Handler = (...args: unknown[]) => unknown;

interface Route {
  name: string;
  isPublic: boolean;
  /** What a project token needs (the admin token passes all). */
  role: TokenRole;
}

/** Every route of the API: `Controller.method`, whether it is marked public, the role it needs. */
function routes(): Route[] {
  const controllers = Reflect.getMetadata('controllers', ApiModule) as (new (
    ...args: never[]
  ) => object)[];
  const found: Route[] = [];
  for (const controller of controllers) {
    const classPublic = Reflect.getMetadata('kiln:public', controller) === true;
    for (const key of Object.getOwnPropertyNames(controller.prototype)) {
      const handler = (controller.prototype as Record<string, Handler>)[key];
      if (key === 'constructor' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) {
        continue;
      }
      const isPublic = classPublic || Reflect.getMetadata('kiln:public', handler) === true;
      found.push({
        name: `${controller.name}.${key}`,
        isPublic,
        role: requiredRole(handler, controller),
      });
    }
  }
  return found;
}

describe('the API guard', () => {
  it('finds the routes', () => {
    expect(routes().length).toBeGreaterThan(40);
  });

  // `/metrics` checks its own token (admin or KILN_METRICS_TOKEN): metrics.e2e-spec.ts. The
  // dashboard's session routes check the token (sign-in) or the session cookie themselves.
  it('leaves public exactly /healthz, /metrics, /openapi.json, the trigger URLs and /ui/session; every other route needs a token', () => {
    expect(
      routes()
        .filter((route) => route.isPublic)
        .map((route) => route.name)
        .sort(),
    ).toEqual([
      'HealthController.healthz',
      'IncomingTriggersController.fire',
      'MetricsController.scrape',
      'OpenApiController.describe',
      'UiSessionController.current',
      'UiSessionController.signIn',
      'UiSessionController.signOut',
    ]);
  });

  // A new route must be added here, with the role a project token needs for it: the rule is a GET
  // needs `read` and anything else `manage`, unless the route says otherwise with `@Role(...)`.
  it('knows the role every token-guarded route needs', () => {
    const expected: Record<string, TokenRole> = {
      'ProjectLimitsController.clusters': 'read',
      'ProjectLimitsController.quotas': 'read',
      'ProjectLimitsController.grant': 'manage', // and the admin token alone (AdminGuard)
      'ProjectLimitsController.revoke': 'manage', // and the admin token alone (AdminGuard)
      'ProjectLimitsController.setQuotas': 'manage', // and the admin token alone (AdminGuard)
      'ProjectsController.create': 'manage', // and the admin token alone (AdminGuard)
      'ProjectsController.list': 'read',
      'ProjectsController.get': 'read',
      'ProjectsController.update': 'manage', // and the admin token alone (AdminGuard)
      'ProjectsController.listTokens': 'manage',
      'ProjectsController.issueToken': 'manage',
      'ProjectsController.revokeToken': 'manage',
      'ProjectStatsController.stats': 'read',
      'CodesController.register': 'manage',
      'CodesController.uploadImage': 'manage',
      'CodesController.list': 'read',
      'StacksController.list': 'read',
      'CodesController.get': 'read',
      'CodesController.delete': 'manage',
      'CodesController.revisions': 'read',
      'CodesController.download': 'read',
      'CodesController.stats': 'read',
      'CodesController.pause': 'manage',
      'CodesController.resume': 'manage',
      'CodesController.cancelAll': 'queue',
      'TasksController.create': 'queue',
      'TasksController.webhook': 'queue',
      'TasksController.list': 'read',
      'TasksController.get': 'read',
      'TasksController.log': 'read',
      'TasksController.outlog': 'read',
      'TasksController.cancel': 'queue',
      'TasksController.progress': 'queue',
      'TasksController.retry': 'queue',
      'TasksController.cancelMany': 'queue',
      'TasksController.retryMany': 'queue',
      'TasksController.chain': 'read',
      'TasksController.deliveries': 'read',
      'SchedulesController.create': 'manage',
      'SchedulesController.list': 'read',
      'SchedulesController.get': 'read',
      'SchedulesController.cancel': 'manage',
      'SchedulesController.update': 'manage',
      'CredentialsController.add': 'manage',
      'CredentialsController.list': 'read',
      'InvokeController.invoke': 'queue',
      'CredentialsController.delete': 'manage',
      'WebhooksController.create': 'manage',
      'WebhooksController.list': 'read',
      'WebhooksController.taskSecret': 'manage', // a signing secret, made on first use
      'WebhooksController.get': 'read',
      'WebhooksController.update': 'manage',
      'WebhooksController.delete': 'manage',
      'WebhooksController.rotateSecret': 'manage',
      'WebhooksController.deliveries': 'read',
      'WebhooksController.redeliver': 'manage',
      'LogDrainsController.create': 'manage',
      'LogDrainsController.list': 'read',
      'LogDrainsController.get': 'read',
      'LogDrainsController.update': 'manage',
      'LogDrainsController.delete': 'manage',
      'CodeTriggersController.create': 'manage',
      'CodeTriggersController.list': 'read',
      'CodeTriggersController.revoke': 'manage',
    };
    const actual = Object.fromEntries(
      routes()
        .filter((route) => !route.isPublic)
        .map((route) => [route.name, route.role]),
    );
    expect(actual).toEqual(expected);
  });
});
