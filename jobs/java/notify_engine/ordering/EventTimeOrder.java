package notify_engine.ordering;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Hands each key's hop records on in event-time order, ties broken by the message's bytes: a record
 * waits in keyed state until the watermark passes its time.
 *
 * <p>A keyed stage fed by several upstream instances otherwise sees one key's records in whatever order
 * the network delivered them (a shopper's views come through the item model instances of different
 * items), so the same input could lead to different decisions on every run, restart or rescale. Behind
 * this, a stage sees its keys' records in the order of their times, and by the time it sees one, every
 * stage upstream has passed that time too.
 *
 * <p>A record already behind the watermark (late: its own partition's data was out of order by more than
 * the watermark allows) goes on at once and is counted. Live, a quiet input does not hold records back for
 * long: its event time follows the wall clock ({@link PartitionWatermarks}).
 */
public final class EventTimeOrder extends KeyedProcessFunction<Row, Row, Row> {
    private static final long serialVersionUID = 1L;

    private transient MapState<Long, List<byte[]>> waiting;
    private transient Counter late;

    @Override
    public void open(OpenContext context) {
        waiting = getRuntimeContext().getMapState(new MapStateDescriptor<>(
            "waiting-by-event-time", Types.LONG, Types.LIST(PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO)));
        late = getRuntimeContext().getMetricGroup().counter("records_late_for_ordering");
    }

    @Override
    @SuppressWarnings("unchecked")
    public void processElement(Row row, Context ctx, Collector<Row> out) throws Exception {
        Tuple3<String, Long, byte[]> record = (Tuple3<String, Long, byte[]>) row.getField(1);
        long time = record.f1;
        if (time <= ctx.timerService().currentWatermark()) {
            late.inc();
            out.collect(row);
            return;
        }
        List<byte[]> same = waiting.get(time);
        if (same == null) {
            same = new ArrayList<>(1);
            ctx.timerService().registerEventTimeTimer(time);
        }
        same.add(record.f2);
        waiting.put(time, same);
    }

    @Override
    public void onTimer(long time, OnTimerContext ctx, Collector<Row> out) throws Exception {
        List<byte[]> messages = waiting.get(time);
        if (messages == null) {
            return;
        }
        waiting.remove(time);
        messages.sort(Arrays::compareUnsigned);
        String key = (String) ctx.getCurrentKey().getField(0);
        for (byte[] message : messages) {
            out.collect(Row.of(key, Tuple3.of(key, time, message)));
        }
    }
}
