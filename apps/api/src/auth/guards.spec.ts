import 'reflect-metadata';
import { PATH_METADATA } from '@nestjs/common/constants';
import { ApiModule } from '../api.module';

type Handler = (...args: unknown[]) => unknown;

/** Every route of the API: `Controller.method` and whether it is marked public. */
function routes(): { name: string; isPublic: boolean }[] {
  const controllers = Reflect.getMetadata('controllers', ApiModule) as (new (
    ...args: never[]
  ) => object)[];
  const found: { name: string; isPublic: boolean }[] = [];
  for (const controller of controllers) {
    const classPublic = Reflect.getMetadata('kiln:public', controller) === true;
    for (const key of Object.getOwnPropertyNames(controller.prototype)) {
      const handler = (controller.prototype as Record<string, Handler>)[key];
      if (key === 'constructor' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) {
        continue;
      }
      const isPublic = classPublic || Reflect.getMetadata('kiln:public', handler) === true;
      found.push({ name: `${controller.name}.${key}`, isPublic });
    }
  }
  return found;
}

describe('the API guard', () => {
  it('finds the routes', () => {
    expect(routes().length).toBeGreaterThan(40);
  });

  it('leaves public exactly /healthz and the trigger URLs; every other route needs a token', () => {
    expect(
      routes()
        .filter((route) => route.isPublic)
        .map((route) => route.name)
        .sort(),
    ).toEqual(['HealthController.healthz', 'IncomingTriggersController.fire']);
  });
});
