import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { AppConfig } from '../../config/app.config';
import { APP_CONFIG } from '../../config/config.tokens';
import { IngestionService } from '../ingestion.service';
import { MeasurementGenerator, simulatedCities } from './measurement-generator';

const TICK_MS = 100;
export const SIMULATOR_INTERVAL = 'simulator';

/**
 * Feeds simulated measurements through the same producer as POST /measurements, on an interval
 * registered with the SchedulerRegistry (its rate is configuration, so not a decorator).
 */
@Injectable()
export class SimulatorService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(SimulatorService.name);
  private owed = 0;
  private inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly ingestion: IngestionService,
    private readonly scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    const { enabled, cities, rate } = this.config.simulator;
    if (!enabled) return;
    const generator = new MeasurementGenerator(simulatedCities(cities));
    this.logger.log(`simulating ${cities} cities at ${rate} measurements/s`);
    this.scheduler.addInterval(
      SIMULATOR_INTERVAL,
      setInterval(() => this.tick(generator, rate), TICK_MS),
    );
  }

  async onModuleDestroy(): Promise<void> {
    if (this.scheduler.doesExist('interval', SIMULATOR_INTERVAL))
      this.scheduler.deleteInterval(SIMULATOR_INTERVAL);
    await Promise.allSettled([...this.inFlight]);
  }

  private tick(generator: MeasurementGenerator, rate: number): void {
    this.owed += (rate * TICK_MS) / 1000;
    const count = Math.floor(this.owed);
    if (count === 0) return;
    this.owed -= count;
    const now = new Date();
    // Millisecond offsets keep the message ids of one tick distinct.
    const batch = Array.from({ length: count }, (_, i) =>
      generator.next(new Date(now.getTime() - (i % TICK_MS))),
    );
    const sending = this.ingestion
      .ingest(batch)
      .catch((error: Error) => this.logger.warn(`simulated batch not accepted: ${error.message}`))
      .finally(() => this.inFlight.delete(sending));
    this.inFlight.add(sending);
  }
}
