"""What the demo's customers write and what the support agent replies, in English and Spanish.

Every reply is built from templates so that the generator controls exactly which properties a
reply has (found or not, long or short, language, a stray Thai phrase) and the graders' true rates
are known. Not-found phrasings all match the demo config's ``reply_finds_order`` pattern; no other
text does.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Literal

Language = Literal["en", "es"]

ORDER_STATUSES = ("processing", "shipped", "out_for_delivery", "delivered", "delayed")
ORDER_STATUS_WEIGHTS = (15, 45, 12, 20, 8)
CARRIERS = ("UPS", "FedEx", "DHL", "USPS")

_ITEMS_EN = (
    "hiking boots",
    "a rain jacket",
    "a 40L backpack",
    "a water bottle",
    "a sleeping bag",
    "a two-person tent",
    "a fleece",
    "trail running shoes",
    "a headlamp",
    "wool socks",
)
_ITEMS_ES = (
    "unas botas de montaña",
    "una chaqueta impermeable",
    "una mochila",
    "un saco de dormir",
    "una tienda de campaña",
)

_QUESTIONS_EN = (
    "Where is my order {id}?",
    "Can you tell me when order {id} will arrive?",
    "I ordered {item} last week (order {id}) and it still hasn't arrived. Any update?",
    "What's the status of {id}?",
    "order {id} status pls",
    "Has my order {id} shipped yet?",
    "I'm waiting on order {id}. Do you know when it will be delivered?",
    "My tracking page for {id} hasn't updated in days. Is something wrong?",
    "I need {item} by the weekend. Order number {id}, will it make it?",
    "Could you check on order {id} for me?",
    "It says my package was delivered but I don't have it. Order {id}.",
    "Is order {id} on its way?",
    "any news on {id}? been waiting a while",
    "Which carrier is delivering my order {id}?",
    "When will {id} get here?",
    "I bought {item} for a trip on Friday, order {id}. When does it arrive?",
    "Order {id}: still processing?? It's been 4 days.",
    "can u check {id}",
)
_GREETINGS_EN = ("", "", "", "Hi! ", "Hello! ", "Hey there. ", "Good morning. ")
_SIGNOFFS_EN = ("", "", "", " Thanks!", " Thank you.", " Thanks in advance.")

_QUESTIONS_ES = (
    "Hola, ¿dónde está mi pedido {id}?",
    "¿Cuándo llega mi pedido {id}?",
    "Buenas, compré {item} y todavía no ha llegado. El pedido es {id}.",
    "¿Me podéis decir el estado del pedido {id}?",
    "Hola, ¿ya se envió el pedido {id}? Gracias.",
)

_FOUND_EN: dict[str, tuple[str, ...]] = {
    "processing": (
        "Your order {id} is still being prepared at our warehouse. Once it ships with {carrier},"
        " you'll get an email with tracking details. The current delivery estimate is {eta}.",
        "Order {id} hasn't shipped yet; it's being packed right now. We expect it to reach you"
        " by {eta}.",
    ),
    "shipped": (
        "Good news! Your order {id} has shipped with {carrier} and should arrive on {eta}. You can"
        " follow it with the tracking link in your shipping confirmation email.",
        "Your order {id} is on its way with {carrier}. The estimated delivery date is {eta}.",
        "Order {id} has left our warehouse and is now with {carrier}. It is expected to arrive"
        " on {eta}.",
    ),
    "out_for_delivery": (
        "Your order {id} is out for delivery with {carrier} today, {eta}. Please keep an eye out"
        " for the driver!",
        "Great news: {carrier} has order {id} on a delivery vehicle, so it should reach you"
        " today ({eta}).",
    ),
    "delivered": (
        "Our records show that order {id} was delivered by {carrier} on {eta}. If it isn't at"
        " your door, please check with your neighbours or your building's mail room, and let me"
        " know so I can open a claim with the carrier.",
        "{carrier} marked order {id} as delivered on {eta}. If you haven't received it, reply"
        " here and I'll start an investigation with them.",
    ),
    "delayed": (
        "I'm sorry, order {id} is running a little late. {carrier} now expects to deliver it on"
        " {eta}. Thank you for your patience.",
        "Order {id} has been delayed in transit with {carrier}. The new estimated delivery date"
        " is {eta}. I apologise for the inconvenience.",
    ),
}
_OPENERS_EN = ("", "", "Thanks for reaching out! ", "Hi there! ")
_CLOSERS_EN = (
    "",
    " Is there anything else I can help you with?",
    " Let me know if you have any other questions.",
    " Have a great day!",
)

_FOUND_ES: dict[str, tuple[str, ...]] = {
    "processing": (
        "Tu pedido {id} se está preparando en nuestro almacén. Cuando salga con {carrier} te"
        " enviaremos un correo con el seguimiento. La entrega estimada es el {eta}.",
    ),
    "shipped": (
        "¡Buenas noticias! Tu pedido {id} ya ha salido con {carrier} y debería llegar el {eta}.",
        "Tu pedido {id} está en camino con {carrier}. La fecha estimada de entrega es el {eta}.",
    ),
    "out_for_delivery": (
        "Tu pedido {id} está en reparto hoy, {eta}, con {carrier}. ¡Atento al repartidor!",
    ),
    "delivered": (
        "Según nuestros registros, {carrier} entregó el pedido {id} el {eta}. Si no lo tienes,"
        " dímelo y abriré una reclamación con el transportista.",
    ),
    "delayed": (
        "Lo siento, el pedido {id} lleva algo de retraso. {carrier} prevé entregarlo el {eta}."
        " Gracias por tu paciencia.",
    ),
}

_NOT_FOUND_EN = (
    "I'm sorry, I couldn't find an order with that number. Could you double-check the order ID?"
    " It starts with the letter A followed by six digits, and it is in your confirmation email.",
    "Unfortunately I can't find any order matching {id}. Please check the number in your order"
    " confirmation email and send it to me again.",
    "I'm sorry, but I was unable to locate order {id} in our system. Could you confirm the order"
    " number, or the email address you used at checkout?",
    "Sorry, there is no order with the number {id} on file. Could you double-check it for me?",
    "I could not find an order with the ID {id}. If you placed it very recently it may not be in"
    " our system yet, so please try again in an hour or double-check the number.",
)
_NOT_FOUND_ES = (
    "Lo siento, no he podido encontrar ningún pedido con el número {id}. ¿Podrías revisarlo en"
    " tu correo de confirmación?",
    "Vaya, no encuentro ningún pedido con el número {id}. ¿Puedes comprobar que es correcto?",
)

# Extra paragraphs that push a reply past the prompt's 120-word limit.
_EXTRAS_EN = (
    "While you wait, you can follow every step of the delivery on our Track My Order page: just"
    " enter your order number and the email address you used at checkout. You will also get a"
    " text message from the carrier on the day of delivery with a two-hour window.",
    "If you are not home when the driver arrives, the carrier will usually leave a card and try"
    " again the next working day, or leave the parcel at a nearby pick-up point. You can also"
    " choose a safe place or a neighbour in the carrier's app ahead of time.",
    "Just so you know, every item can be returned free of charge within 30 days of delivery, as"
    " long as it is unused and in its original packaging. To start a return, open the order in"
    " your account, select the items and print the prepaid label we send you.",
    "If anything arrives damaged or something is missing from the box, please take a photo and"
    " reply to this message within 14 days. We will send a replacement straight away, and you"
    " will not need to send the damaged item back to us.",
)
_EXTRAS_ES = (
    "Mientras tanto, puedes seguir cada paso de la entrega en nuestra página Seguir mi pedido:"
    " solo tienes que introducir el número de pedido y el correo electrónico que usaste al"
    " comprar. El transportista también te enviará un mensaje el día de la entrega.",
    "Si no estás en casa cuando llegue el repartidor, normalmente dejará un aviso y volverá a"
    " intentarlo al día siguiente, o dejará el paquete en un punto de recogida cercano. También"
    " puedes elegir un vecino o un lugar seguro en la aplicación del transportista.",
    "Te recuerdo que puedes devolver cualquier artículo sin coste durante 30 días desde la"
    " entrega, siempre que esté sin usar y en su embalaje original. Para iniciar la devolución,"
    " abre el pedido en tu cuenta, elige los artículos e imprime la etiqueta prepagada.",
)
LONG_REPLY_MIN_WORDS = 130
"""A padded reply has at least this many words; an unpadded one stays well under 120."""

# What a model trained mostly on multilingual data occasionally lets slip into a reply.
_THAI_PHRASES = ("ขอบคุณที่ใช้บริการค่ะ", "หากมีคำถามเพิ่มเติม ยินดีช่วยเหลือค่ะ")

_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}
_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
           "septiembre", "octubre", "noviembre", "diciembre"),
}  # fmt: skip


def customer_message(rng: random.Random, language: Language, order_id: str) -> str:
    """A customer's question about ``order_id``, phrased one of many ways."""
    if language == "es":
        return rng.choice(_QUESTIONS_ES).format(id=order_id, item=rng.choice(_ITEMS_ES))
    question = rng.choice(_QUESTIONS_EN).format(id=order_id, item=rng.choice(_ITEMS_EN))
    return f"{rng.choice(_GREETINGS_EN)}{question}{rng.choice(_SIGNOFFS_EN)}"


def found_reply(
    rng: random.Random, language: Language, order_id: str, status: str, carrier: str, eta: date
) -> str:
    """The agent's answer when the lookup found the order."""
    fields = {"id": order_id, "carrier": carrier, "eta": human_date(eta, language)}
    if language == "es":
        return rng.choice(_FOUND_ES[status]).format(**fields)
    body = rng.choice(_FOUND_EN[status]).format(**fields)
    return f"{rng.choice(_OPENERS_EN)}{body}{rng.choice(_CLOSERS_EN)}"


def not_found_reply(rng: random.Random, language: Language, order_id: str) -> str:
    """The agent's answer when it says the order does not exist."""
    templates = _NOT_FOUND_ES if language == "es" else _NOT_FOUND_EN
    return rng.choice(templates).format(id=order_id)


def lengthen(rng: random.Random, language: Language, reply: str) -> str:
    """Add extra paragraphs until ``reply`` has at least :data:`LONG_REPLY_MIN_WORDS` words."""
    extras = list(_EXTRAS_ES if language == "es" else _EXTRAS_EN)
    rng.shuffle(extras)
    paragraphs = [reply]
    while len(" ".join(paragraphs).split()) < LONG_REPLY_MIN_WORDS:
        paragraphs.append(extras.pop())
    return "\n\n".join(paragraphs)


def add_thai_phrase(rng: random.Random, reply: str) -> str:
    """Append a stray Thai phrase, the kind of slip a multilingual model occasionally makes."""
    return f"{reply} {rng.choice(_THAI_PHRASES)}"


def human_date(day: date, language: Language) -> str:
    """``day`` as a reply would write it: "Thursday, November 5" or "jueves 5 de noviembre"."""
    weekday = _WEEKDAYS[language][day.weekday()]
    month = _MONTHS[language][day.month - 1]
    if language == "es":
        return f"{weekday} {day.day} de {month}"
    return f"{weekday}, {month} {day.day}"


# --- refund requests: a topic that appears in production only from release 2026.11.2 on ----------
# (the mobile app added a "Get help with this order" button that sends customers to the chat).

_REFUND_REASONS = (
    "they're too small",
    "it arrived damaged",
    "it's not what I expected",
    "the zip broke after one use",
    "I ordered the wrong size",
    "it came in the wrong colour",
    "I found it cheaper elsewhere",
    "I don't need it anymore",
)
_REFUND_REQUESTS = (
    "I want a refund for order {id}, {reason}.",
    "Can I get my money back for {id}? {Reason}.",
    "How do I return {item} from order {id} and get a refund?",
    "Please refund order {id}. {Reason}.",
    "I returned {item} (order {id}) two weeks ago and still haven't been refunded. Where is my"
    " money?",
    "I'd like to send back {item} from order {id} — {reason}. Do I get a full refund?",
    "refund for {id} pls, {reason}",
    "Is it too late to return order {id}? {Reason}.",
    "You charged me twice for order {id}. I need one of the payments refunded.",
    "Order {id}: {reason}, so I'd like my money back please.",
    "Can I exchange {item} from order {id} or do I have to return it for a refund?",
    "When will I see the refund for order {id} on my card?",
)
_REFUND_REPLIES = (
    "I'm sorry to hear that. I've opened a return for order {id}: you'll get an email with a"
    " prepaid label within the hour. Once the parcel is scanned by the carrier, our returns team"
    " reviews it and confirms the outcome by email.",
    "Thanks for letting me know. I can't issue refunds myself, but I've opened a claim for order"
    " {id} with our returns team. They usually reply within two working days.",
    "Order {id} is within our 30-day return window. Print the prepaid label from your account,"
    " drop the parcel at any carrier point, and our returns team will take it from there.",
    "I've passed your request about order {id} to our billing team, who handle refunds. They will"
    " email you within two working days to confirm the next steps.",
)


def refund_request(rng: random.Random, order_id: str) -> str:
    """A customer asking for their money back on ``order_id``, phrased one of many ways."""
    reason = rng.choice(_REFUND_REASONS)
    question = rng.choice(_REFUND_REQUESTS).format(
        id=order_id, item=rng.choice(_ITEMS_EN), reason=reason,
        Reason=reason[0].upper() + reason[1:])
    return f"{rng.choice(_GREETINGS_EN)}{question}{rng.choice(_SIGNOFFS_EN)}"


def refund_reply(rng: random.Random, order_id: str) -> str:
    """The agent's answer to a refund request: it opens a return or a claim, never promises."""
    body = rng.choice(_REFUND_REPLIES).format(id=order_id)
    return f"{rng.choice(_OPENERS_EN)}{body}{rng.choice(_CLOSERS_EN)}"
