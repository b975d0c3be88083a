package notify_engine.ordering;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.types.Row;

/**
 * A hop record (routing key, event time, message) as PyFlink's keyed streams carry it: a row of the
 * key and the record, keyed by {@code KeyByKeySelector} as PyFlink's {@code key_by} keys it, so the key
 * groups of a stage's state are the same whether its input was ordered here or keyed by PyFlink.
 */
public final class RoutedByKey implements MapFunction<Tuple3<String, Long, byte[]>, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Row map(Tuple3<String, Long, byte[]> record) {
        return Row.of(record.f0, record);
    }
}
