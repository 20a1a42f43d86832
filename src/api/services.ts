import type { EventBus } from '../events/event-bus.js';
import type { SystemService } from '../system/system-service.js';

/** What the routes may call: one service per area, wired by daemon.ts. */
export interface Services {
  system: SystemService;
  events: EventBus;
}
