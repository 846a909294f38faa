import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { concat, defer, from, Observable, of, Subject, Subscription, switchMap } from 'rxjs';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { Measurement } from '../domain/measurement';
import { CITY_PAGE_LIMIT } from '../speed-layer/dto/cities-query.dto';
import { toStoredMeasurementDto } from '../speed-layer/dto/responses.dto';
import { CityLatest, eventKey, SpeedLayerRepository } from '../speed-layer/speed-layer.repository';
import { PipelineFigures, PipelineMonitor } from './pipeline-monitor.service';

/** City updates go out at most this often (the first after a quiet spell at once). */
export const CITY_PUSH_INTERVAL_MS = 250;
const PIPELINE_INTERVAL_MS = 1000;
const HEARTBEAT_INTERVAL_MS = 15_000;
/** While someone watches: the cities other instances wrote (their shards are not read here). */
const CITIES_REFRESH_MS = 5000;
const SEED_WAIT_MS = 2000;
const RETRY_MS = 2000;
/** A city is shown as stale once its newest measurement is older than this. */
export const STALE_AFTER_MS = 10 * 60_000;

export interface DashboardEvent {
  type: 'snapshot' | 'cities' | 'pipeline' | 'heartbeat';
  id: string;
  data: string;
  retry?: number;
}

/** A city as the API answers it: its measurement in the response's field order. */
const inApiShape = (city: CityLatest) => ({ ...city, latest: toStoredMeasurementDto(city.latest) });

/**
 * One feed for every open dashboard: the newest measurement per city, pushed from the speed
 * layer's write path in-process (no polling for this instance's shards), coalesced to at most one
 * event per CITY_PUSH_INTERVAL_MS; pipeline figures once a second; heartbeats. Each event is
 * serialised once and fanned out, and the timers (and the one shared DynamoDB refresh of the
 * cities) run only while someone is connected, whatever the number of viewers.
 */
@Injectable()
export class DashboardFeed implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(DashboardFeed.name);
  private readonly boot = randomBytes(4).toString('hex');
  private readonly cities = new Map<string, CityLatest>();
  private readonly changed = new Set<string>();
  private readonly bus = new Subject<DashboardEvent>();
  private seq = 0;
  private viewers = 0;
  private pipeline: PipelineFigures | null = null;
  private lastCityPush = Number.NEGATIVE_INFINITY;
  private cityTimer?: NodeJS.Timeout;
  private timers: NodeJS.Timeout[] = [];
  private noted?: Subscription;
  private seeded?: Promise<void>;
  private sampling = false;
  private refreshing = false;

  constructor(
    private readonly speedLayer: SpeedLayerRepository,
    private readonly monitor: PipelineMonitor,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    this.noted = this.speedLayer.latestNoted$.subscribe((m) => this.note(m));
  }

  onModuleDestroy(): void {
    this.noted?.unsubscribe();
    this.stopTimers();
    clearTimeout(this.cityTimer);
    // Open streams end, so that closing the HTTP server does not wait for the viewers.
    this.bus.complete();
  }

  /** A viewer's stream: the current state first (also after a reconnect), then the live events. */
  connect(): Observable<DashboardEvent> {
    return defer(() => from(this.seedOnce())).pipe(
      switchMap(() => concat(of(this.snapshot()), this.live())),
    );
  }

  get viewerCount(): number {
    return this.viewers;
  }

  private live(): Observable<DashboardEvent> {
    return new Observable<DashboardEvent>((subscriber) => {
      const subscription = this.bus.subscribe(subscriber);
      if (++this.viewers === 1) this.startTimers();
      return () => {
        subscription.unsubscribe();
        if (--this.viewers === 0) this.stopTimers();
      };
    });
  }

  private snapshot(): DashboardEvent {
    return {
      type: 'snapshot',
      id: this.nextId(),
      retry: RETRY_MS,
      data: JSON.stringify({
        server_time: new Date().toISOString(),
        windows: this.config.aggregation.sizes.map((s) => s.label),
        stale_after_ms: STALE_AFTER_MS,
        cities: [...this.cities.values()]
          .sort((a, b) => a.city_id.localeCompare(b.city_id))
          .map(inApiShape),
        pipeline: this.pipeline,
      }),
    };
  }

  private note(m: Measurement): void {
    const current = this.cities.get(m.city_id);
    if (current && eventKey(current.latest) >= eventKey(m)) return;
    this.cities.set(m.city_id, { city_id: m.city_id, city_name: m.city_name, latest: m });
    this.changed.add(m.city_id);
    if (this.viewers > 0) this.scheduleCityPush();
  }

  private scheduleCityPush(): void {
    if (this.cityTimer) return;
    const wait = Math.max(0, this.lastCityPush + CITY_PUSH_INTERVAL_MS - Date.now());
    this.cityTimer = setTimeout(() => {
      this.cityTimer = undefined;
      this.pushCities();
    }, wait);
  }

  private pushCities(): void {
    if (this.changed.size === 0) return;
    this.lastCityPush = Date.now();
    const items = [...this.changed].map((id) => inApiShape(this.cities.get(id)!));
    this.changed.clear();
    this.publish('cities', { items });
  }

  private publish(type: DashboardEvent['type'], payload: unknown): void {
    this.bus.next({ type, id: this.nextId(), data: JSON.stringify(payload) });
  }

  private nextId(): string {
    this.seq += 1;
    return `${this.boot}-${this.seq}`;
  }

  private startTimers(): void {
    this.changed.clear();
    this.timers = [
      setInterval(() => void this.samplePipeline(), PIPELINE_INTERVAL_MS),
      setInterval(() => void this.refreshCities(), CITIES_REFRESH_MS),
      setInterval(
        () => this.publish('heartbeat', { server_time: new Date().toISOString() }),
        HEARTBEAT_INTERVAL_MS,
      ),
    ];
    void this.samplePipeline();
  }

  private stopTimers(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  private async samplePipeline(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      this.pipeline = await this.monitor.sample();
      if (this.viewers > 0) this.publish('pipeline', this.pipeline);
    } catch (error) {
      this.logger.warn(`pipeline figures failed: ${(error as Error).name}`);
    } finally {
      this.sampling = false;
    }
  }

  /** The first viewer waits (bounded) for the cities already in the table. */
  private seedOnce(): Promise<void> {
    this.seeded ??= this.refreshCities();
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<void>((resolve) => (timer = setTimeout(resolve, SEED_WAIT_MS)));
    return Promise.race([this.seeded, bounded]).finally(() => clearTimeout(timer));
  }

  private async refreshCities(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      let startKey: Record<string, unknown> | undefined;
      do {
        const page = await this.speedLayer.cities(CITY_PAGE_LIMIT.max, startKey);
        for (const city of page.items) this.note(city.latest);
        startKey = page.next ?? undefined;
      } while (startKey);
    } catch (error) {
      this.logger.warn(`reading the cities failed: ${(error as Error).name}`);
    } finally {
      this.refreshing = false;
    }
  }
}
