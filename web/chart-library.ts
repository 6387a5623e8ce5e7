/** uPlot and its styles, loaded by the chart once there is something to draw. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export default uPlot;
