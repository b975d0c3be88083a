package notify_engine.ordering;

import org.apache.flink.api.common.eventtime.TimestampAssignerSupplier;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;

/**
 * One Kafka partition's event time: the newest record's time less the allowed out-of-orderness, as
 * Flink's bounded-out-of-orderness watermarks, while records come.
 *
 * <p>A partition without a timed record for {@code idlenessMs} has said all it had to say up to its newest
 * record: its watermark reaches that record's time, so the keyed stages behind it ({@link EventTimeOrder})
 * hand on everything it sent. Then, if its last record was live (its time within {@code liveWithinMs} of
 * the wall clock when it came), its event time goes on with the wall clock, {@code idlenessMs} behind: a
 * session's end or a shopper's quiet hours fire on time when no one is shopping. Otherwise (old events, a
 * replay) it waits there for its next record, holding the other partitions back no further than its own
 * newest time; a partition of a sparse topic ({@code sparse}: the catalogue, the user directory, read once
 * at start-up) is marked idle instead, as {@code withIdleness} does, and holds nothing back, as does one that
 * has had no timed record at all after {@code idlenessMs}. The events topic is not sparse, and
 * that matters at the end of a replay: a stop-with-savepoint that drains the job sends the end of event time
 * through inputs that are active only, and with every input idle the timers due after the last event never
 * fired (measured: 126 of 935 notifications lost). Records untimed by {@link EventTimeOfRecord}
 * ({@code Long.MIN_VALUE}) count for nothing.
 */
public final class PartitionWatermarks implements WatermarkGenerator<String> {
    // A partition of the events topic with no timed record since it was opened (empty, or read to its end before
    // a restore) holds event time back this many idleness periods, then counts as live: its event time follows
    // the wall clock. Long enough for a slow start-up's first fetch; it is never marked idle (see above).
    private static final int EMPTY_AFTER_IDLENESSES = 6;

    private final long outOfOrdernessMs;
    private final long idlenessMs;
    private final long liveWithinMs;
    private final boolean sparse;
    private long newest = Long.MIN_VALUE;  // the newest record's event time
    private long newestArrived;  // the wall clock when it came (or when this partition was opened)
    private boolean live;
    private long emitted = Long.MIN_VALUE;

    PartitionWatermarks(long outOfOrdernessMs, long idlenessMs, long liveWithinMs, boolean sparse) {
        this.outOfOrdernessMs = outOfOrdernessMs;
        this.idlenessMs = idlenessMs;
        this.liveWithinMs = liveWithinMs;
        this.sparse = sparse;
        this.newestArrived = System.currentTimeMillis();
    }

    /** The sources' strategy: event time from {@link EventTimeOfRecord}, watermarks per partition from this. */
    public static WatermarkStrategy<String> strategy(long outOfOrdernessMs, long idlenessMs, long earliestMs,
                                                     long maxAheadMs, int maxPayloadBytes, boolean sparse) {
        long liveWithinMs = Math.max(60_000L, 2 * (outOfOrdernessMs + idlenessMs));
        EventTimeOfRecord times = new EventTimeOfRecord(earliestMs, maxAheadMs, maxPayloadBytes);
        return WatermarkStrategy.forGenerator(new PerPartition(outOfOrdernessMs, idlenessMs, liveWithinMs, sparse))
            .withTimestampAssigner((TimestampAssignerSupplier<String>) context -> times);
    }

    /**
     * A generator for each partition, and another kind for the source itself. A source operator makes one
     * generator for its own output first (Flink's {@code ProgressiveTimestampsAndWatermarks.createMainOutput}),
     * then one per split it is given; the Kafka source reads every record through a split's output, so the first
     * sees none. It writes to the source's output directly, not through the minimum over the partitions: as an
     * empty partition, it took the wall clock after six idleness periods and made every record read after that
     * late (a replay read for over a minute handed a shopper's events on in the order they came, differently on
     * every run). Each source instance has its own copy of this supplier, so the first call is its own output's.
     */
    private static final class PerPartition implements WatermarkGeneratorSupplier<String> {
        private static final long serialVersionUID = 1L;

        private final long outOfOrdernessMs;
        private final long idlenessMs;
        private final long liveWithinMs;
        private final boolean sparse;
        private transient boolean sourceOutputMade;

        PerPartition(long outOfOrdernessMs, long idlenessMs, long liveWithinMs, boolean sparse) {
            this.outOfOrdernessMs = outOfOrdernessMs;
            this.idlenessMs = idlenessMs;
            this.liveWithinMs = liveWithinMs;
            this.sparse = sparse;
        }

        @Override
        public WatermarkGenerator<String> createWatermarkGenerator(Context context) {
            if (!sourceOutputMade) {
                sourceOutputMade = true;
                return new SourceOutput(sparse ? idlenessMs : EMPTY_AFTER_IDLENESSES * idlenessMs);
            }
            return new PartitionWatermarks(outOfOrdernessMs, idlenessMs, liveWithinMs, sparse);
        }
    }

    /**
     * The source's own output: no event time of its own, and after {@code idleAfterMs} it says it is idle, which
     * Flink heeds only where every partition's output is idle too (or the source instance was given none, as
     * when a topic has fewer partitions than the job has instances: it must not hold the others back).
     */
    private static final class SourceOutput implements WatermarkGenerator<String> {
        private final long idleFrom;

        SourceOutput(long idleAfterMs) {
            this.idleFrom = System.currentTimeMillis() + idleAfterMs;
        }

        @Override
        public void onEvent(String record, long eventTime, WatermarkOutput output) {
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {
            if (System.currentTimeMillis() >= idleFrom) {
                output.markIdle();
            }
        }
    }

    @Override
    public void onEvent(String record, long eventTime, WatermarkOutput output) {
        if (eventTime == Long.MIN_VALUE) {
            return;
        }
        long now = System.currentTimeMillis();
        if (eventTime >= newest) {
            newest = eventTime;
            live = eventTime >= now - liveWithinMs;
        }
        newestArrived = now;
    }

    @Override
    public void onPeriodicEmit(WatermarkOutput output) {
        if (newest == Long.MIN_VALUE) {
            long waited = System.currentTimeMillis() - newestArrived;
            if (sparse && waited >= idlenessMs) {
                output.markIdle();
            } else if (!sparse && waited >= EMPTY_AFTER_IDLENESSES * idlenessMs) {
                emit(System.currentTimeMillis() - idlenessMs, output);  // an empty partition holds back no one
            }
            return;
        }
        long quietFor = System.currentTimeMillis() - newestArrived;
        if (quietFor < idlenessMs) {
            emit(newest - outOfOrdernessMs - 1, output);
        } else if (live) {
            emit(newest + quietFor - idlenessMs, output);
        } else {
            emit(newest, output);
            if (sparse) {
                output.markIdle();
            }
        }
    }

    private void emit(long watermark, WatermarkOutput output) {
        if (watermark > emitted) {
            emitted = watermark;
            output.emitWatermark(new Watermark(watermark));
        } else {
            output.markActive();
        }
    }
}
